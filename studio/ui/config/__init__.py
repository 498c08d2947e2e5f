"""The run config the screens build: the one the studio opens with and how it follows a change
of base model (`starter`), and the `ftstudio train` line that runs it headless
(`command_line`)."""
