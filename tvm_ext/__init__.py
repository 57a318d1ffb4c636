"""forge_fe extensions to Apache TVM: frontends, Relax passes and the device/CPU partitioner."""
