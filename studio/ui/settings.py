"""The user's studio settings, kept in `studio.user_settings` (the headless `ftstudio models`
reads the added model folders too); the names the app imports from here."""

from studio.user_settings import (
    DEFAULT_THEME,
    SETTINGS_FILE,
    UserSettings,
    config_dir,
    load_settings,
    save_settings,
    settings_path,
    user_themes_dir,
)

__all__ = [
    "DEFAULT_THEME",
    "SETTINGS_FILE",
    "UserSettings",
    "config_dir",
    "load_settings",
    "save_settings",
    "settings_path",
    "user_themes_dir",
]
