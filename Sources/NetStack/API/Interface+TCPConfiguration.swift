extension Interface {
    /// The settings new connections get unless `listenTCP`/`connectTCP` pass
    /// their own (buffer sizes, MSL, Nagle, keepalive...).
    public var defaultTCPConfiguration: TCPConfiguration {
        get { tcp.defaultConfiguration }
        set { tcp.defaultConfiguration = newValue }
    }
}
