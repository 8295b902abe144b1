// swift-tools-version:6.0
// hikyaku: a privilege-separated mail transfer agent for Debian hosts.
// Layers point one way: pure code, then the systems layer, then the daemon
// skeleton, then per-daemon libraries, then thin executables.
import PackageDescription

let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
]
let system: Target.Dependency = .product(name: "SystemPackage", package: "swift-system")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")

let package = Package(
    name: "hikyaku",
    products: [
        .executable(name: "master", targets: ["master"]),
        .executable(name: "smtpd", targets: ["smtpd"]),
        .executable(name: "cleanup", targets: ["cleanup"]),
        .executable(name: "qmgr", targets: ["qmgr"]),
        .executable(name: "local", targets: ["local"]),
        .executable(name: "aliasd", targets: ["aliasd"]),
        .executable(name: "pickup", targets: ["pickup"]),
        .executable(name: "showq", targets: ["showq"]),
        .executable(name: "hikyaku-drop", targets: ["hikyaku-drop"]),
        .executable(name: "hikyaku", targets: ["hikyaku"]),
        .executable(name: "makemap", targets: ["makemap"]),
        .executable(name: "sendmail", targets: ["sendmail"]),
        .executable(name: "smtp-client", targets: ["smtp-client"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // C shims for _GNU_SOURCE-only and macro-only libc calls.
        .target(name: "CShims"),

        // Pure code: no sockets, files or clocks.
        .target(name: "MailCore"),
        .target(name: "SMTPProtocol", dependencies: ["MailCore"]),
        .target(name: "QueueFormat", dependencies: ["MailCore"]),
        .target(name: "HikyakuConfig", dependencies: ["MailCore"]),
        .target(name: "HikyakuIPC", dependencies: ["MailCore"]),
        .target(name: "SendmailRules", dependencies: ["MailCore"]),
        // sendmail.mc read as m4 and translated into hikyaku.conf settings.
        .target(name: "SendmailMC", dependencies: ["HikyakuConfig"]),

        // The systems layer: the one file that changes privilege, spawning,
        // durable writes, blocking sockets, users, logging.
        .target(name: "HikyakuSystem", dependencies: ["CShims", "MailCore", "HikyakuConfig", "HikyakuIPC", system, logging]),

        // DNS lookups for remote delivery through glibc's libresolv.
        .systemLibrary(name: "CResolv"),
        .target(name: "DNSResolver", dependencies: ["CResolv", "MailCore", "HikyakuConfig", "HikyakuSystem"]),

        // Berkeley DB maps (sendmail's hash and btree files) and map loading.
        .systemLibrary(name: "CBerkeleyDB", providers: [.apt(["libdb5.3-dev"])]),
        .target(name: "MapStore", dependencies: ["CBerkeleyDB", "SendmailRules", "HikyakuSystem", "HikyakuConfig"]),

        // The daemon skeleton every program runs under.
        .target(name: "DaemonSkeleton", dependencies: ["HikyakuSystem", "HikyakuConfig", "HikyakuIPC", "QueueFormat"] + nio),

        // Per-daemon logic.
        .target(name: "SMTPServer", dependencies: [
            "SMTPProtocol", "HikyakuIPC", "DaemonSkeleton", "HikyakuSystem",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
        ] + nio),
        .target(name: "Cleanup", dependencies: ["QueueFormat", "HikyakuIPC", "DaemonSkeleton", "HikyakuSystem"] + nio),
        .target(name: "QueueManager", dependencies: ["QueueFormat", "HikyakuIPC", "DaemonSkeleton", "HikyakuSystem"] + nio),
        .target(name: "LocalDelivery", dependencies: ["QueueFormat", "HikyakuIPC", "DaemonSkeleton", "HikyakuSystem", "CShims", "SendmailRules"]),
        .target(name: "AliasService", dependencies: ["HikyakuIPC", "DaemonSkeleton", "HikyakuSystem", "SendmailRules", "MapStore"] + nio),
        .target(name: "QueueInspection", dependencies: ["HikyakuSystem", "HikyakuConfig", "QueueFormat", "MailCore", "HikyakuIPC", "DaemonSkeleton"] + nio),
        .target(name: "Pickup", dependencies: ["HikyakuIPC", "DaemonSkeleton", "HikyakuSystem", "MailCore"] + nio),
        // systemd's notification protocol and socket activation (the master only).
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .target(name: "Master", dependencies: ["HikyakuSystem", "HikyakuConfig", "MailCore", "CShims", "CSystemd"]),
        .target(name: "SMTPClient", dependencies: [
            "SMTPProtocol", "HikyakuIPC", "DaemonSkeleton", "HikyakuSystem", "QueueFormat", "DNSResolver",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
        ] + nio),

        // Thin executables.
        .executableTarget(name: "master", dependencies: ["Master"]),
        .executableTarget(name: "smtpd", dependencies: ["SMTPServer"]),
        .executableTarget(name: "cleanup", dependencies: ["Cleanup"]),
        .executableTarget(name: "qmgr", dependencies: ["QueueManager"]),
        .executableTarget(name: "local", dependencies: ["LocalDelivery"]),
        .executableTarget(name: "aliasd", dependencies: ["AliasService"]),
        .executableTarget(name: "pickup", dependencies: ["Pickup"]),
        .executableTarget(name: "showq", dependencies: ["QueueInspection"]),
        .executableTarget(name: "smtp-client", dependencies: ["SMTPClient"]),
        .executableTarget(name: "hikyaku-drop", dependencies: ["Submission", "HikyakuSystem"]),
        .target(name: "Administration", dependencies: [
            "HikyakuSystem", "HikyakuConfig", "QueueFormat", "SendmailRules", "MapStore", "AliasService", "Submission",
            "QueueInspection", "HikyakuIPC", "MailCore", "DNSResolver", "SendmailMC",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "hikyaku", dependencies: ["Administration"]),
        .executableTarget(name: "makemap", dependencies: ["MapStore", "HikyakuSystem"]),
        .target(name: "Submission", dependencies: ["AliasService", "MapStore", "SendmailRules", "HikyakuSystem", "HikyakuConfig", "MailCore", "HikyakuIPC", "QueueInspection", "SMTPProtocol", "CShims"]),
        .executableTarget(name: "sendmail", dependencies: ["Submission", "HikyakuSystem"]),

        .testTarget(name: "MailCoreTests", dependencies: ["MailCore"]),
        .testTarget(name: "SMTPProtocolTests", dependencies: ["SMTPProtocol"]),
        .testTarget(name: "QueueFormatTests", dependencies: ["QueueFormat"]),
        .testTarget(name: "HikyakuConfigTests", dependencies: ["HikyakuConfig"]),
        .testTarget(name: "HikyakuIPCTests", dependencies: ["HikyakuIPC"]),
        .testTarget(name: "HikyakuSystemTests", dependencies: ["HikyakuSystem", "MailCore"]),
        .testTarget(name: "LocalDeliveryTests", dependencies: ["LocalDelivery"]),
        .testTarget(name: "AliasServiceTests", dependencies: ["AliasService", "SendmailRules", "HikyakuIPC", "MailCore"]),
        .testTarget(name: "SendmailRulesTests", dependencies: ["SendmailRules"]),
        .testTarget(name: "SendmailMCTests", dependencies: ["SendmailMC", "HikyakuConfig"], exclude: ["Fixtures"]),
        .testTarget(name: "SubmissionTests", dependencies: ["Submission"]),
        .testTarget(name: "MasterTests", dependencies: ["Master", "HikyakuConfig"]),
        .testTarget(name: "SMTPClientTests", dependencies: ["SMTPClient", "HikyakuConfig", "SMTPProtocol"]),
        .testTarget(name: "DNSResolverTests", dependencies: ["DNSResolver", "MailCore"]),
        .testTarget(name: "DaemonSkeletonTests", dependencies: [
            "DaemonSkeleton", "HikyakuIPC", .product(name: "NIOEmbedded", package: "swift-nio"),
        ] + nio),
    ]
)
