"""Nagios Core plugins: ``nagios.service`` and ``nagios.host`` collectors (``statusjson.cgi``)."""
