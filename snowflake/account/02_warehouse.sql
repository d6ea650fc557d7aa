-- The warehouse every load runs on: small, suspended a minute after the last query, resumed by the
-- next one. Loads are COPY and MERGE of modest batches; resize here if a load outgrows it.
USE ROLE SYSADMIN;

CREATE WAREHOUSE IF NOT EXISTS LOADING WITH
    WAREHOUSE_SIZE = 'XSMALL'
    AUTO_SUSPEND = 60
    AUTO_RESUME = TRUE
    INITIALLY_SUSPENDED = TRUE
    COMMENT = 'dlt loads (roles LOADER, LOADER_CI)';
