-- One row per (date, base, quote): append-only, written by the pipe alone. Never replaced: it holds
-- the whole history. FILE_NAME records the object each row came from, so a duplicate could always
-- be traced to its path (the pipeline writes each row to exactly one path).
CREATE TABLE IF NOT EXISTS EXCHANGE_RATES.EXCHANGE_RATES (
    DATE DATE NOT NULL COMMENT 'ECB working day the rate was published for',
    BASE VARCHAR(3) NOT NULL COMMENT 'ISO 4217 code of the base currency (EUR)',
    QUOTE VARCHAR(3) NOT NULL COMMENT 'ISO 4217 code of the quoted currency',
    RATE FLOAT NOT NULL COMMENT 'Units of QUOTE per one unit of BASE',
    _DLT_LOAD_ID VARCHAR NOT NULL COMMENT 'dlt load package the row was extracted in',
    _DLT_ID VARCHAR NOT NULL COMMENT 'dlt row id',
    FILE_NAME VARCHAR NOT NULL COMMENT 'Object path relative to the stage',
    LOADED_AT TIMESTAMP_LTZ NOT NULL DEFAULT CURRENT_TIMESTAMP() COMMENT 'When Snowpipe loaded the row'
)
COMMENT = 'ECB euro reference rates, one row per day and currency; loaded by EXCHANGE_RATES_PIPE';
