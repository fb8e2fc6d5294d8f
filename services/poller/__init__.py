"""The poller: device registry in, one reading per poll out."""
