"""The Dagster layer: assets, checks, jobs, the sensor and schedules, resources and the sync plan."""
