"""Configuration in and out: config files (export, check, import) and the demo data."""
