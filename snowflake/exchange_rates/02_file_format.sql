-- How the pipe reads dlt's Parquet files. USE_LOGICAL_TYPE makes Snowflake read the `date` column
-- through its Parquet DATE logical type. IF NOT EXISTS rather than OR REPLACE: the pipe holds a
-- reference to this object, and replacing it would leave the pipe pointing at a dropped format.
CREATE FILE FORMAT IF NOT EXISTS EXCHANGE_RATES.DLT_PARQUET
    TYPE = PARQUET
    USE_LOGICAL_TYPE = TRUE
    COMMENT = 'Parquet files written by dlt''s filesystem destination';
