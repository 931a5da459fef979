"""The product's version, written here only: pyproject.toml reads it for the package, /healthz and the admin's
footer show it, and CHANGELOG.md has a section for it (tests/test_package.py holds them together).

Semantic versioning: the REST API, the configuration file format, the environment variables and the
management commands are the public surface a major version keeps.
"""
__version__ = "1.0.0"
