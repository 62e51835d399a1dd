"""Discord bot features, one extension each (loaded by bot.app.HaggleBot)."""
