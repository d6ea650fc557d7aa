"""Constants for the exchange_rates source."""

# The first day the European Central Bank published euro reference rates; the default start of the
# backfill (config `sources.exchange_rates.start_date`).
DEFAULT_START_DATE = "1999-01-04"

# The currency every rate is quoted against (config `sources.exchange_rates.base`).
DEFAULT_BASE = "EUR"

# Days of history asked for per request while backfilling (config `sources.exchange_rates.chunk_days`):
# a year is about 255 working days times 30 currencies, a few hundred kilobytes of JSON.
DEFAULT_CHUNK_DAYS = 365

# Bounds on `chunk_days`: one day is the smallest window; ten years would be one answer of megabytes,
# which is exactly the giant request the chunking is there to avoid.
MIN_CHUNK_DAYS = 1
MAX_CHUNK_DAYS = 3660

# ISO 4217 alphabetic codes are exactly three upper-case Latin letters.
ISO_CODE_PATTERN = r"[A-Z]{3}"

# Incremental de-duplication key: a rate is identified by its day and currency pair. dlt keeps the
# hashes of the rows on the last loaded day and drops them when the API sends that day again.
ROW_KEY = ("date", "base", "quote")

# The table (and resource) name; the S3 layout and the Snowpipe pattern depend on it.
TABLE_NAME = "exchange_rates"
