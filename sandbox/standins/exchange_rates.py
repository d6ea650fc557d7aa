"""The exchange_rates pipeline's stand-in: a Frankfurter API (`sandbox.frankfurter`) of its own."""

from sandbox.frankfurter import FrankfurterServer


class StandIn(FrankfurterServer):
    """A Frankfurter API for the exchange_rates source."""

    source = "exchange_rates"
