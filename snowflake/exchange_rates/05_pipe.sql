-- Snowpipe: S3 event notifications (on the bucket, to the SQS queue SHOW PIPES reports) trigger it.
-- PATTERN admits only the table's data files, laid out by pipelines/exchange_rates.py as
-- exchange_rates/{YYYY}/{MM}/{DD}/{load_id}.{file_id}.parquet - nothing under _dlt_*/, no init
-- marker, no .gz, no other table. Any leading folders are allowed because Snowpipe matches the
-- pattern against the path relative to the stage, while a manual COPY matches the whole location.
-- IF NOT EXISTS, never OR REPLACE: recreating a pipe drops its load history, and the history is what
-- stops Snowpipe loading a path twice.
CREATE PIPE IF NOT EXISTS EXCHANGE_RATES.EXCHANGE_RATES_PIPE
    AUTO_INGEST = TRUE
    COMMENT = 'Loads dlt Parquet files of the exchange_rates table from the landing bucket'
AS
COPY INTO EXCHANGE_RATES.EXCHANGE_RATES (DATE, BASE, QUOTE, RATE, _DLT_LOAD_ID, _DLT_ID, FILE_NAME)
FROM (
    SELECT
        $1:date::DATE,
        $1:base::VARCHAR,
        $1:quote::VARCHAR,
        $1:rate::FLOAT,
        $1:_dlt_load_id::VARCHAR,
        $1:_dlt_id::VARCHAR,
        METADATA$FILENAME
    FROM @EXCHANGE_RATES.LANDING
)
PATTERN = '(.*/)?exchange_rates/[0-9]{4}/[0-9]{2}/[0-9]{2}/[^/]+[.]parquet'
FILE_FORMAT = (FORMAT_NAME = 'EXCHANGE_RATES.DLT_PARQUET');
