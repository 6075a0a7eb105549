"""The ``livefeed`` command and the newsroom's scripts: thin verbs over the modules below."""
