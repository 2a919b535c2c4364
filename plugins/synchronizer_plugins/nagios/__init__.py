"""Nagios Core plugins: the ``nagios.service`` collector (``statusjson.cgi``)."""
