"""Every API endpoint the project calls, declared once (paths under ``WHITESPACE_API_URL``).

The paths of answers that are landed double as their landing names: the raw landing, its manifests
and the warehouse's ``raw_responses`` record them under these strings.
"""

VERSION = "/version"
MY_DETAILS = "/user/myDetails"
CORPORATE = "/shared/corporate"
RISKS = "/risks"
RISK = "/risks/{riskID}"
COMBINED_SETS = "/lines/{rootID}/combinedSets"
ACTIVITIES_FILTER = "/activities/filter"
"""POST: activities of one kind visible to the organisation, in a time window (the change feed)."""
RISK_DETAILS = f"{RISK}+{COMBINED_SETS}"
"""A root's contract and line sets, landed together as one JSON line per root."""
DEFINED_DATA = "/v23.09/data/{riskID}"
"""The contract's Defined Data (tagged values) in the default Whitespace tagset."""
MI_PREPARE = "/mireport/prepare"
MI_FETCH = "/mireport/fetch"
"""The MI report: under ``$ROOT``, not ``$ROOT/api`` (it runs on separate resources). ``prepare``
answers the rows changed since the last ``fetch``; ``fetch`` moves that cursor on."""
MI_REPORT = MI_PREPARE
"""Landed MI answers are recorded under the prepare path."""
