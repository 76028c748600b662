"""The demo on embedded defaults: two simulated hosts, a boot, a live
migration, doctor and Placement.  Above every other room: no runtime
module imports it; the command line names it in its command table.
"""
