"""The compiled engine against the plain-Python reference evaluator, on random
stores (through ``Store.from_arrow``) and random programs."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests.helpers.differential import check_engine_against_reference
from tests.reference.data import StoreData, stores
from tests.reference.programs import GeneratedProgram, programs


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=stores(max_contacts=8, max_events=60), prog=programs())
def test_engine_agrees_with_the_reference(data: StoreData, prog: GeneratedProgram) -> None:
    check_engine_against_reference(data, prog)
