import HikyakuConfig

/// What `hikyaku config import-sendmail-mc` made of a sendmail.mc file:
/// the hikyaku.conf settings, the macros understood with nothing to set,
/// and what was not translated.
public struct MCTranslation: Sendable, Equatable {
    /// The macro (or, for a setting sendmail implies by a macro's absence,
    /// nothing) that a line of the result comes from.
    public struct Origin: Sendable, Equatable {
        public var source: MCSource?
        public var text: String
        /// Statement order, to print in the order of the file.
        var order: Int

        public init(source: MCSource?, text: String, order: Int) {
            self.source = source
            self.text = text
            self.order = order
        }

        var comment: String {
            if let source { return "\(source): \(text)" }
            return text
        }
    }

    /// `key = value`, from one or more macros.
    public struct Setting: Sendable, Equatable {
        public var key: String
        public var value: String
        public var origins: [Origin]
        public var notes: [String]

        /// The value is hikyaku's default already.
        public var isDefault: Bool {
            ConfigParameter.byName[key]?.defaultValue == value
        }
    }

    /// A macro understood that needs no setting.
    public struct Remark: Sendable, Equatable {
        public var origin: Origin
        public var note: String
    }

    /// A macro, define or raw line that was not translated, and why.
    public struct Untranslated: Sendable, Equatable {
        public var origin: Origin
        public var reason: String
        /// False for m4 boilerplate and for what concerns only sendmail's
        /// own files; true when sendmail did something hikyaku will not.
        public var changesBehaviour: Bool
    }

    public var file: String
    public var settings: [Setting]
    public var remarks: [Remark]
    public var untranslated: [Untranslated]

    /// 0 when every macro that matters was translated, 1 when something
    /// sendmail did is not (``Untranslated/changesBehaviour``).
    public var exitStatus: Int32 {
        untranslated.contains(where: \.changesBehaviour) ? 1 : 0
    }

    public var setting: [String: String] {
        Dictionary(settings.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
    }

    /// The hikyaku.conf fragment: a header, the settings (those equal to
    /// hikyaku's default commented out), each after the macros it comes
    /// from, and the list of what was not translated.
    public func rendered() -> String {
        var out = """
        # hikyaku.conf settings translated from \(file)
        # by hikyaku config import-sendmail-mc. Each setting follows the
        # sendmail.mc lines it comes from; settings equal to hikyaku's default
        # are commented out. What was not translated is listed at the end.

        """
        enum Block {
            case setting(Setting)
            case remark(Remark)
            var order: Int {
                switch self {
                case .setting(let s): return s.origins.map(\.order).min() ?? 0
                case .remark(let r): return r.origin.order
                }
            }
        }
        let blocks = (settings.map(Block.setting) + remarks.map(Block.remark)).enumerated()
            .sorted { ($0.element.order, $0.offset) < ($1.element.order, $1.offset) }.map(\.element)
        for block in blocks {
            out += "\n"
            switch block {
            case .setting(let setting):
                for origin in setting.origins.sorted(by: { $0.order < $1.order }) {
                    out += "# from \(origin.comment)\n"
                }
                for note in setting.notes { out += "#   \(note)\n" }
                if setting.isDefault {
                    out += "# \(setting.key) = \(setting.value)\t(hikyaku's default)\n"
                } else {
                    out += "\(setting.key) = \(setting.value)\n"
                }
            case .remark(let remark):
                out += "# from \(remark.origin.comment)\n"
                out += "#   nothing to set: \(remark.note)\n"
            }
        }
        out += "\n"
        if untranslated.isEmpty {
            out += "# Not translated: nothing.\n"
            return out
        }
        let changing = untranslated.filter(\.changesBehaviour).count
        out += "# Not translated: \(untranslated.count) (\(changing) of them change what the mail system does;\n"
        out += "# the others are marked \"ignored\"):\n"
        for item in untranslated.enumerated().sorted(by: { ($0.element.origin.order, $0.offset) < ($1.element.origin.order, $1.offset) }).map(\.element) {
            out += "#   \(item.origin.comment)\n"
            out += "#       \(item.changesBehaviour ? "" : "ignored: ")\(item.reason)\n"
        }
        return out
    }
}
