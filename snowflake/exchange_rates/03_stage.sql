-- The dlt dataset folder in the landing bucket. dlt writes its bookkeeping (_dlt_loads/,
-- _dlt_pipeline_state/, _dlt_version/, init) here too: the pipe's PATTERN keeps it out.
-- The storage integration EXCHANGE_RATES_LANDING is created once by ACCOUNTADMIN (see README.md);
-- it holds the IAM role, so no AWS key is ever stored in Snowflake.
-- IF NOT EXISTS: recreating a stage that a pipe reads from breaks the pipe.
CREATE STAGE IF NOT EXISTS EXCHANGE_RATES.LANDING
    URL = 's3://exchange-rates-landing/exchange_rates/'
    STORAGE_INTEGRATION = EXCHANGE_RATES_LANDING
    FILE_FORMAT = (FORMAT_NAME = 'EXCHANGE_RATES.DLT_PARQUET')
    COMMENT = 'dlt dataset exchange_rates in the S3 landing bucket';
