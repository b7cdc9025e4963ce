"""YAML -> frozen dataclasses. All validation of user input lives in this package."""
