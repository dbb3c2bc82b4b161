"""One module per page: ``layout(**params)`` builds it, ``register(app, ctx)`` wires its callbacks."""
