"""The Dagster code location. It loads without any configuration and without the network: the
resources name the ``WHITESPACE_*`` variables that are set, and a run reads their values."""

import dagster as dg

from pipelines.defs.build import build
from pipelines.defs.resources import from_environment


@dg.definitions
def defs() -> dg.Definitions:
    return build(from_environment())
