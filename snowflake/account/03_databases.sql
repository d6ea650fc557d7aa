-- The databases and the schemas each pipeline writes: RAW (production) and RAW_CI (CI), the same
-- layout in both. dlt upper-cases dataset names: pipelines/<name>.py DATASET_NAME = "currencies" is
-- schema CURRENCIES. The *_STAGING schemas are dlt's staging datasets for replace (insert-from-
-- staging) and merge; exchange_rates only appends (through Snowpipe) and needs none.
-- Schemas are created here, by SYSADMIN, so the loader roles need no CREATE SCHEMA in RAW. WITH
-- MANAGED ACCESS: only SECURITYADMIN grants access to what is inside, not the loader that owns the
-- tables it creates.
USE ROLE SYSADMIN;

CREATE DATABASE IF NOT EXISTS RAW COMMENT = 'Raw data as loaded by the dlt pipelines (production)';
CREATE SCHEMA IF NOT EXISTS RAW.CURRENCIES WITH MANAGED ACCESS COMMENT = 'pipelines/currencies.py';
CREATE SCHEMA IF NOT EXISTS RAW.PRODUCTS WITH MANAGED ACCESS COMMENT = 'pipelines/products.py';
CREATE SCHEMA IF NOT EXISTS RAW.HUBSPOT WITH MANAGED ACCESS COMMENT = 'pipelines/hubspot.py';
CREATE SCHEMA IF NOT EXISTS RAW.EXCHANGE_RATES WITH MANAGED ACCESS COMMENT = 'pipelines/exchange_rates.py, via Snowpipe';
CREATE SCHEMA IF NOT EXISTS RAW.CURRENCIES_STAGING WITH MANAGED ACCESS COMMENT = 'dlt staging of CURRENCIES';
CREATE SCHEMA IF NOT EXISTS RAW.PRODUCTS_STAGING WITH MANAGED ACCESS COMMENT = 'dlt staging of PRODUCTS';
CREATE SCHEMA IF NOT EXISTS RAW.HUBSPOT_STAGING WITH MANAGED ACCESS COMMENT = 'dlt staging of HUBSPOT';

CREATE DATABASE IF NOT EXISTS RAW_CI COMMENT = 'What CI loads: disposable, never read by anyone else';
CREATE SCHEMA IF NOT EXISTS RAW_CI.CURRENCIES WITH MANAGED ACCESS COMMENT = 'pipelines/currencies.py (CI)';
CREATE SCHEMA IF NOT EXISTS RAW_CI.PRODUCTS WITH MANAGED ACCESS COMMENT = 'pipelines/products.py (CI)';
CREATE SCHEMA IF NOT EXISTS RAW_CI.HUBSPOT WITH MANAGED ACCESS COMMENT = 'pipelines/hubspot.py (CI)';
CREATE SCHEMA IF NOT EXISTS RAW_CI.EXCHANGE_RATES WITH MANAGED ACCESS COMMENT = 'pipelines/exchange_rates.py (CI)';
CREATE SCHEMA IF NOT EXISTS RAW_CI.CURRENCIES_STAGING WITH MANAGED ACCESS COMMENT = 'dlt staging (CI)';
CREATE SCHEMA IF NOT EXISTS RAW_CI.PRODUCTS_STAGING WITH MANAGED ACCESS COMMENT = 'dlt staging (CI)';
CREATE SCHEMA IF NOT EXISTS RAW_CI.HUBSPOT_STAGING WITH MANAGED ACCESS COMMENT = 'dlt staging (CI)';
