"""knowledge: articles in Chinese and English, their search, and the answers offered before an agent must."""
