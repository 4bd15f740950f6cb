# The synerise_server and synerise_stand_in fixtures.
pytest_plugins = ["django_synerise.testing.pytest_plugin"]
