-- The schema Snowpipe loads the exchange rates into (the database comes from the connection: RAW).
-- Idempotent: never replaced, so nothing in it is ever dropped by re-applying this folder.
CREATE SCHEMA IF NOT EXISTS EXCHANGE_RATES
    COMMENT = 'ECB reference rates, ingested by Snowpipe from s3://exchange-rates-landing';
