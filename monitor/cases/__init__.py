"""Cases: alarms become proactive service cases, one open case per device and problem."""

from monitor.cases.opener import CaseOpener

__all__ = ["CaseOpener"]
