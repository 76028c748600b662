"""The configuration: the options (:mod:`.opts`, declared once), Nova's
device_spec and alias formats (:mod:`.devspec`, :mod:`.flavors`), and
:func:`.settings.load_settings`, the one place that reads a ConfigOpts
into checked settings.
"""
