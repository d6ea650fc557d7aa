-- The storage integration the exchange_rates stage reads the landing bucket through
-- (snowflake/exchange_rates/03_stage.sql). It holds the IAM role Snowflake assumes, so no AWS key is
-- stored in Snowflake. Only ACCOUNTADMIN may create integrations. After the first apply, run
-- `DESC INTEGRATION EXCHANGE_RATES_LANDING` and put STORAGE_AWS_IAM_USER_ARN and
-- STORAGE_AWS_EXTERNAL_ID into the IAM role's trust policy (see the README).
-- IF NOT EXISTS: re-creating an integration changes its external ID and breaks that trust policy.
USE ROLE ACCOUNTADMIN;

CREATE STORAGE INTEGRATION IF NOT EXISTS EXCHANGE_RATES_LANDING
    TYPE = EXTERNAL_STAGE
    STORAGE_PROVIDER = 'S3'
    ENABLED = TRUE
    STORAGE_AWS_ROLE_ARN = '&{EXCHANGE_RATES_ROLE_ARN}'
    STORAGE_ALLOWED_LOCATIONS = ('s3://exchange-rates-landing/exchange_rates/')
    COMMENT = 'Snowpipe of exchange_rates reads the dlt dataset folder of the landing bucket';

GRANT USAGE ON INTEGRATION EXCHANGE_RATES_LANDING TO ROLE LOADER;
