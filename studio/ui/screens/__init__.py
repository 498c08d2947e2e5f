"""The studio's screens: one module per top-level screen, and the modal dialogs."""
