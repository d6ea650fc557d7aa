"""Constants for the currencies source."""

# Path of the currency list on a Frankfurter-compatible API, relative to `base_url`.
CURRENCIES_PATH = "currencies"

# ISO 4217 alphabetic codes are exactly three upper-case Latin letters.
ISO_CODE_PATTERN = r"[A-Z]{3}"

# The longest currency name we accept; longer means the payload is not what we think it is.
MAX_NAME_LENGTH = 100
