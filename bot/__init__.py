"""The Telegram channel (python-telegram-bot used as a library; the flow is the engine's).

PTB 22 is moving time periods (e.g. RetryAfter.retry_after) from int seconds to
timedelta and warns on every read of the old form, even inside its own constructors.
We opt in to the new form, which our code reads (bot.outbox.retry_after_seconds).
"""

import os

os.environ.setdefault("PTB_TIMEDELTA", "true")
