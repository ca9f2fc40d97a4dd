"""Plans: scheduled sends of a delivery to a segment (the recurrence of their
schedules, their saved definitions and the scheduler that runs them)."""
