"""The app's frame, shared by every screen: the screens and their keys (`navigation`), the
command palette (`palette`), themes (`themes`), ASCII stand-ins for plain terminals (`glyphs`),
redraw rate caps (`throttle`), torch imported once off the UI thread (`heavy_imports`), what
the screens share (`state`), and the real terminal the app runs in (`terminal`)."""
