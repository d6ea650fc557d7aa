"""The currencies pipeline's stand-in: a Frankfurter API (`sandbox.frankfurter`)."""

from sandbox.frankfurter import FrankfurterServer


class StandIn(FrankfurterServer):
    """A Frankfurter API for the currencies source."""

    source = "currencies"
