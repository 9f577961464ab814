"""The pip tier: hashed, fully pinned requirement locks per platform, resolved with uv."""
