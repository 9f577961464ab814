"""`envtiers init` and `envtiers import`: set up the three tiers in an existing Metaflow project.

`sources` reads what the project already has, `imports` reads other tools' locks as version
preferences, `render` turns both into file contents (pure functions), `writer` writes them
without ever overwriting a file silently.
"""
