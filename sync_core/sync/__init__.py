"""The sync pipeline: scan -> plan -> hash -> transfer -> record -> mirror, and the repair loop."""
