"""Release: the build orchestration, gates, manifest, report, sweep and its Ray cluster."""
