"""Journeys (docs/journeys-runtime.md): definitions, versions, runs and their step log.

JourneyService(store).add(text)          # a draft; edits of live ones make versions
JourneyService(store).go_live(name)      # entries count from now
JourneyService(store).advance()          # wake the runs due (the scheduler calls this)
store.ingest_events(...)                 # clicks, opens and entries move runs
"""
