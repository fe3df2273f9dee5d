// The libFuzzer target: build with -sanitize=fuzzer,address (see README.md).
// SwiftPM gives every executable its own `main` (it links the module's entry
// point as `main`), so libFuzzer's own main is never linked; this one hands
// control to libFuzzer's driver, which then calls `fuzzOneInput` per input.
import FuzzRig
import Foundation

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// One driver for the process: its counts are only for reporting.
nonisolated(unsafe) var driver = FuzzDriver()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    driver.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

/// libFuzzer counts inputs; this says how many frames they made.
func report() {
    print("fuzz-interface: \(driver.inputs) inputs, \(driver.frames) frames in, \(driver.framesOut) frames out")
}
atexit(report)

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput))
