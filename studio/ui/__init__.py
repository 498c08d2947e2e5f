"""The Textual app: `ftstudio` with no command. The only package that imports Textual."""
