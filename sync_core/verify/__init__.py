"""Verification: plan the units, verify one unit, publish the report (the cloud and the CLI alike)."""
