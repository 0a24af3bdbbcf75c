"""What every part of the head-end shares: settings, the database, security,
money and time formatting, event codes."""
