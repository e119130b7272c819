import CSluice

func sluiceIoUringDisabled() -> Int32 { sluice_io_uring_disabled_sysctl() }
func sluiceKeepSize() -> Int32 { sluice_falloc_keep_size() }
