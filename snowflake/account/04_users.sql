-- The service users the pipelines log in as: key-pair authentication only (TYPE = SERVICE users
-- cannot have a password or log in interactively). SVC_DLT loads production, SVC_DLT_CI loads CI:
-- a CI key can never load production data.
-- The public keys are variables: `python -m utils.snowflake_sql apply snowflake/account
--   --var SVC_DLT_RSA_PUBLIC_KEY=@rsa_key.pub --var SVC_DLT_CI_RSA_PUBLIC_KEY=@rsa_key_ci.pub ...`
-- (or SnowSQL with variable substitution). ALTER ... SET makes re-applying idempotent; to rotate a
-- key without downtime, set RSA_PUBLIC_KEY_2 first, switch the secret, then replace RSA_PUBLIC_KEY.
USE ROLE USERADMIN;

CREATE USER IF NOT EXISTS SVC_DLT
    TYPE = SERVICE
    DEFAULT_ROLE = LOADER
    DEFAULT_WAREHOUSE = LOADING
    DEFAULT_NAMESPACE = RAW
    COMMENT = 'dlt pipelines, production (Prefect work pool)';
ALTER USER SVC_DLT SET RSA_PUBLIC_KEY = '&{SVC_DLT_RSA_PUBLIC_KEY}';

CREATE USER IF NOT EXISTS SVC_DLT_CI
    TYPE = SERVICE
    DEFAULT_ROLE = LOADER_CI
    DEFAULT_WAREHOUSE = LOADING
    DEFAULT_NAMESPACE = RAW_CI
    COMMENT = 'dlt pipelines, CI (GitHub Actions)';
ALTER USER SVC_DLT_CI SET RSA_PUBLIC_KEY = '&{SVC_DLT_CI_RSA_PUBLIC_KEY}';
