"""System checks for the SYNERISE settings."""
