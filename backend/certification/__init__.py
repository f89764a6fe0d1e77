"""Certification and accreditation (the ETF model's modes of use b and c): the use case.

An agency's board runs rounds; schools submit a cycle, frozen as a snapshot of what the
anonymity gate lets through; assessors review it indicator by indicator; the board
decides; everything is written to the audit trail. No aiohttp here: the dashboard and the
API call these functions and turn `Refused` into HTTP errors.
"""
