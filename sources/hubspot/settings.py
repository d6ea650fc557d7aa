"""Constants for the HubSpot source: endpoints, page sizes and the limits of HubSpot's CRM v3 API."""

# Endpoints, relative to `base_url` (e.g. https://api.hubapi.com).
CONTACTS_PATH = "crm/v3/objects/contacts"
SEARCH_PATH = "crm/v3/objects/contacts/search"
PROPERTIES_PATH = "crm/v3/properties/contacts"

# The list endpoint quietly caps pages at 100; search accepts up to 200 per page.
LIST_PAGE_SIZE = 100
SEARCH_PAGE_SIZE = 200

# The longest URL we send. HubSpot's edge (and many proxies) answer 414 past about 8 KB, and a
# portal with a few hundred custom properties cannot name them all in one URL, so the list
# endpoint is asked for the properties in batches that keep each URL under this length.
MAX_URL_LENGTH = 6000
# Room kept in that budget for `limit`, `after` and `archived` (an `after` cursor is at most 20 digits).
LIST_QUERY_OVERHEAD = len("?limit=100&after=99999999999999999999&archived=false&properties=")

# The general limit when a response has not told us yet (`X-HubSpot-RateLimit-Max` /
# `-Interval-Milliseconds`): HubSpot's lowest tier, 100 requests per rolling 10 seconds.
DEFAULT_RATE_LIMIT = 100
DEFAULT_RATE_INTERVAL_SECONDS = 10.0
# Our clock and HubSpot's count the same request at slightly different instants (send versus
# arrival): a request is treated as still inside the window for this fraction of it longer.
RATE_WINDOW_SAFETY = 0.025

# Search has its own per-second limit and its responses carry no rate-limit headers, so it is
# paced from configuration. HubSpot documents four (later five) per second; four is safe on both.
DEFAULT_SEARCH_REQUESTS_PER_SECOND = 4.0
SEARCH_INTERVAL_SECONDS = 1.0

# Search is eventually consistent: a contact modified just before a run may be indexed just
# after it. Each run therefore searches from this many seconds before the previous high-water
# mark (and deletions from this many seconds before the previous archived pass began); the merge
# on `id` makes the overlap harmless.
DEFAULT_LOOKBACK_SECONDS = 60.0

# HubSpot property types (`type` on GET /crm/v3/properties/contacts) to dlt data types. Anything
# else (string, enumeration, phone_number, object_coordinates, json...) arrives as text.
#
# Numbers load as DECIMAL(38, 18) - NUMBER(38,18) on Snowflake - and never as a double: HubSpot
# sends them as strings, portals hold 17-digit integers (which a double cannot) and HubSpot's own
# computed values carry 16 or 17 significant digits (e.g. "1.3333333333333333"). 20 digits before
# the point and 18 after hold both exactly. A value that does not fit (more digits on either side)
# is never rounded: it loads unchanged as text into `<property>__v_text` (see schema.py).
PROPERTY_DATA_TYPES = {
    "number": "decimal",
    "date": "date",
    "datetime": "timestamp",
    "bool": "bool",
}
NUMBER_PRECISION = 38
NUMBER_SCALE = 18
# `hs_object_id` is the record id: a whole number, so an integer rather than a decimal.
PROPERTY_TYPE_OVERRIDES = {"hs_object_id": "bigint"}
# The property in which HubSpot lists the ids of the contacts merged into a contact (";"-separated).
MERGED_IDS_PROPERTY = "hs_merged_object_ids"

# The cursor property of increments, and the columns the source adds to every row.
LAST_MODIFIED = "lastmodifieddate"
ID_COLUMN = "id"
ARCHIVED_COLUMN = "archived"
