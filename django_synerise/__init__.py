"""django-synerise."""
