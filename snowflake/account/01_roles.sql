-- Roles of the data pipelines. USERADMIN creates roles (Snowflake's recommended split of duties);
-- each custom role is granted to SYSADMIN so administrators can manage what these roles own.
USE ROLE USERADMIN;

CREATE ROLE IF NOT EXISTS LOADER
    COMMENT = 'dlt pipelines in production: loads RAW, reads nothing else';
CREATE ROLE IF NOT EXISTS LOADER_CI
    COMMENT = 'dlt pipelines in CI: loads RAW_CI only';
CREATE ROLE IF NOT EXISTS READER
    COMMENT = 'Analysts and tools: reads the loaded tables of RAW';

GRANT ROLE LOADER TO ROLE SYSADMIN;
GRANT ROLE LOADER_CI TO ROLE SYSADMIN;
GRANT ROLE READER TO ROLE SYSADMIN;
