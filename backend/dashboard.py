"""(being built)"""

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this part's routes and resources on the app."""
