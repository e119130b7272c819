import Foundation

/// Turns one schema into Swift source: a struct with every field of every version, nested
/// structs, a memberwise initialiser with Kafka's defaults, and a version-aware encoder and
/// decoder. The output depends only on the schema, so regenerating is deterministic.
struct Emitter {
    let message: MessageSpec
    let sourceName: String
    private var lines: [String] = []
    private var indent = 0
    private var structs: [String: StructSpec] = [:]
    private var structOrder: [String] = []

    init(message: MessageSpec, sourceName: String) throws {
        self.message = message
        self.sourceName = sourceName
        for common in message.commonStructs { try register(common) }
        try collect(message.fields)
    }

    private mutating func register(_ spec: StructSpec) throws {
        if let existing = structs[spec.name] {
            if existing.fields.isEmpty && !spec.fields.isEmpty { structs[spec.name] = spec }
            return
        }
        structs[spec.name] = spec
        structOrder.append(spec.name)
        try collect(spec.fields)
    }

    private mutating func collect(_ fields: [FieldSpec]) throws {
        for field in fields where field.isStructElement {
            try register(StructSpec(name: field.elementType, fields: field.fields))
        }
    }

    var valid: VersionRange { message.validVersions }
    var structOrderForTests: [String] { structOrder }
    var structsForTests: [String: StructSpec] { structs }
    var flexibleStart: Int? { message.flexibleVersions.isNone ? nil : message.flexibleVersions.lower }

    // MARK: - output helpers

    private mutating func line(_ text: String = "") {
        lines.append(text.isEmpty ? "" : String(repeating: "    ", count: indent) + text)
    }

    private mutating func open(_ text: String) { line(text + " {"); indent += 1 }
    private mutating func close(_ suffix: String = "") { indent -= 1; line("}" + suffix) }

    // MARK: - naming and types

    static let keywords: Set<String> = ["associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func",
        "import", "init", "inout", "internal", "let", "open", "operator", "private", "protocol", "public", "rethrows",
        "static", "struct", "subscript", "typealias", "var", "break", "case", "continue", "default", "defer", "do",
        "else", "fallthrough", "for", "guard", "if", "in", "repeat", "return", "switch", "where", "while", "as", "Any",
        "catch", "false", "is", "nil", "super", "self", "Self", "throw", "throws", "true", "try", "Type", "some", "any"]

    static func propertyName(_ schemaName: String) -> String {
        let chars = Array(schemaName)
        var upperRun = 0
        while upperRun < chars.count && chars[upperRun].isUppercase { upperRun += 1 }
        let name: String
        if upperRun == 0 {
            name = schemaName
        } else if upperRun == 1 || upperRun == chars.count {
            name = String(chars[0..<upperRun]).lowercased() + String(chars[upperRun...])
        } else {
            // "IPAddress" -> "ipAddress": the last capital of a run starts the next word.
            name = String(chars[0..<(upperRun - 1)]).lowercased() + String(chars[(upperRun - 1)...])
        }
        return keywords.contains(name) ? "`\(name)`" : name
    }

    static func primitiveType(_ type: String) -> String? {
        switch type {
        case "bool": "Swift.Bool"
        case "int8": "Swift.Int8"
        case "int16": "Swift.Int16"
        case "int32": "Swift.Int32"
        case "int64": "Swift.Int64"
        case "uint16": "Swift.UInt16"
        case "uint32": "Swift.UInt32"
        case "float64": "Swift.Double"
        case "string": "Swift.String"
        case "bytes": "[Swift.UInt8]"
        case "records": "NIOCore.ByteBuffer"
        case "uuid": "Uuid"
        default: nil
        }
    }

    func isNullable(_ f: FieldSpec) -> Bool {
        !f.nullableVersions.clamped(to: f.versions.clamped(to: valid)).isNone || f.type == "records"
    }

    func swiftType(_ f: FieldSpec) -> String {
        let element = Self.primitiveType(f.elementType) ?? f.elementType
        let base = f.isArray ? "[\(element)]" : element
        return isNullable(f) ? base + "?" : base
    }

    func defaultExpression(_ f: FieldSpec) -> String {
        let d = f.defaultValue
        if isNullable(f) && (d == nil || d == "null" || d == "None") {
            // Kafka's default for a nullable field without a default is the empty value, except
            // where the schema says null; records are always null by default.
            if d == nil && f.type != "records" && !f.isStructElement {
                return nonNullDefault(f, nil)
            }
            if d == nil && f.isStructElement && f.isArray { return "[]" }
            return "nil"
        }
        return nonNullDefault(f, d)
    }

    private func nonNullDefault(_ f: FieldSpec, _ d: String?) -> String {
        if f.isArray { return "[]" }
        switch f.type {
        case "bool":
            return (d?.lowercased() == "true") ? "true" : "false"
        case "int8", "int16", "int32", "int64", "uint16", "uint32":
            guard let d, !d.isEmpty else { return "0" }
            if d.lowercased().hasPrefix("0x") { return "0x" + d.dropFirst(2) }
            return d
        case "float64":
            return d.map { Double($0) != nil ? $0 : "0" } ?? "0"
        case "string":
            guard let d else { return "\"\"" }
            return "\"" + d.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        case "bytes": return "[]"
        case "records": return "nil"
        case "uuid": return "Uuid.zero"
        default: return "\(f.elementType)()"
        }
    }

    // MARK: - the file

    mutating func render() -> String {
        lines = []
        line("// Generated by MessageGenerator from the Kafka schema \(sourceName). Do not edit;")
        line("// regenerate with `make generate`.")
        line()
        line("import NIOCore")
        line()
        let conformance = message.kind == "request" || message.kind == "response" ? "KafkaMessage" : "KafkaStruct"
        open("public struct \(message.name): \(conformance), Sendable, Equatable")
        line("public static let messageName = \"\(message.name)\"")
        if let key = message.apiKey {
            line("public static let apiKey: Swift.Int16 = \(key)")
        }
        line("public static let validVersions: ClosedRange<Swift.Int16> = \(valid.lower)...\(valid.upper ?? valid.lower)")
        line("public static let flexibleVersionsStart: Swift.Int16? = \(flexibleStart.map(String.init) ?? "nil")")
        line()
        renderBody(name: message.name, fields: message.fields, isTop: true)
        for name in structOrder {
            let spec = structs[name]!
            line()
            open("public struct \(name): Sendable, Equatable")
            renderBody(name: name, fields: spec.fields, isTop: false)
            close()
        }
        close()
        return lines.joined(separator: "\n") + "\n"
    }

    private mutating func renderBody(name: String, fields: [FieldSpec], isTop: Bool) {
        for f in fields {
            line("public var \(Self.propertyName(f.name)): \(swiftType(f))")
        }
        line("/// Tagged fields this version does not know, kept so that re-encoding reproduces them.")
        line("public var unknownTaggedFields: [RawTaggedField]")
        line()
        // Memberwise initialiser with defaults.
        var params = fields.map { "\(Self.propertyName($0.name)): \(swiftType($0)) = \(defaultExpression($0))" }
        params.append("unknownTaggedFields: [RawTaggedField] = []")
        if params.count == 1 {
            open("public init(\(params[0]))")
        } else {
            line("public init(")
            indent += 1
            for (i, p) in params.enumerated() { line(p + (i < params.count - 1 ? "," : "")) }
            indent -= 1
            open(")")
        }
        for f in fields {
            let p = Self.propertyName(f.name)
            line("self.\(p) = \(p)")
        }
        line("self.unknownTaggedFields = unknownTaggedFields")
        close()
        line()
        renderEncode(fields: fields)
        line()
        renderDecode(fields: fields)
    }

    // MARK: - encode

    private func regularRange(_ f: FieldSpec) -> VersionRange {
        // Versions in which the field is written in the fixed part of the struct.
        if f.isTagged { return .none }
        return f.versions
    }

    private func taggedRange(_ f: FieldSpec) -> VersionRange {
        guard f.isTagged else { return .none }
        let tagged = f.taggedVersions.isNone ? f.versions : f.taggedVersions
        return tagged.clamped(to: f.versions)
    }

    private var flexibleExpression: String {
        guard let start = flexibleStart else { return "false" }
        if start <= valid.lower { return "true" }
        return "version >= \(start)"
    }

    private mutating func renderEncode(fields: [FieldSpec]) {
        open("public func encode(into buffer: inout NIOCore.ByteBuffer, version: Swift.Int16)")
        line("let flexible = \(flexibleExpression)")
        line("_ = flexible")
        for f in fields {
            let range = regularRange(f)
            guard let cond = range.condition(within: valid) else {
                encodeValue(f, value: "self.\(Self.propertyName(f.name))", compact: compactExpression(f))
                continue
            }
            if cond == "false" { continue }
            open("if \(cond)")
            encodeValue(f, value: "self.\(Self.propertyName(f.name))", compact: compactExpression(f))
            close()
        }
        let tagged = fields.filter { $0.isTagged }.sorted { $0.tag! < $1.tag! }
        if flexibleStart != nil {
            open("if flexible")
            if tagged.isEmpty {
                line("buffer.writeKafkaTaggedFields(self.unknownTaggedFields)")
            } else {
                line("var known: [RawTaggedField] = []")
                for f in tagged {
                    let p = "self.\(Self.propertyName(f.name))"
                    var conds: [String] = []
                    if let c = taggedRange(f).condition(within: valid) { conds.append(c) }
                    conds.append("\(p) != \(defaultExpression(f))")
                    open("if " + conds.joined(separator: " && "))
                    line("var field = NIOCore.ByteBufferAllocator().buffer(capacity: 16)")
                    encodeValue(f, value: p, compact: "true", target: "field")
                    line("known.append(RawTaggedField(tag: \(f.tag!), data: field))")
                    close()
                }
                line("buffer.writeKafkaTaggedFields(known + self.unknownTaggedFields)")
            }
            close()
        }
        close()
    }

    private func compactExpression(_ f: FieldSpec) -> String {
        if let o = f.flexibleOverride, o.isNone { return "false" }
        return "flexible"
    }

    private func nullableCondition(_ f: FieldSpec) -> String? {
        // nil: nullable in every version the field exists; "false": never nullable.
        let fieldRange = f.versions.clamped(to: valid)
        let n = f.nullableVersions.clamped(to: fieldRange)
        if n.isNone { return f.type == "records" ? nil : "false" }
        if n == fieldRange || n.contains(fieldRange) { return nil }
        return n.condition(within: valid) ?? nil
    }

    private mutating func encodeValue(_ f: FieldSpec, value: String, compact: String, target: String = "buffer") {
        let nullable = isNullable(f)
        if f.isArray {
            if nullable {
                line("\(target).writeKafkaNullableArrayLength(\(value)?.count, compact: \(compact))")
                open("for element in \(value) ?? []")
            } else {
                line("\(target).writeKafkaArrayLength(\(value).count, compact: \(compact))")
                open("for element in \(value)")
            }
            encodeScalar(f.elementType, value: "element", nullable: false, compact: compact, target: target)
            close()
            return
        }
        encodeScalar(f.type, value: value, nullable: nullable, compact: compact, target: target)
    }

    private mutating func encodeScalar(_ type: String, value: String, nullable: Bool, compact: String, target: String) {
        switch type {
        case "bool": line("\(target).writeKafkaBool(\(value))")
        case "int8", "int16", "int32", "int64", "uint16", "uint32": line("\(target).writeInteger(\(value))")
        case "float64": line("\(target).writeKafkaFloat64(\(value))")
        case "uuid": line("\(target).writeKafkaUuid(\(value))")
        case "string":
            line(nullable ? "\(target).writeKafkaNullableString(\(value), compact: \(compact))"
                          : "\(target).writeKafkaString(\(value), compact: \(compact))")
        case "bytes":
            line(nullable ? "\(target).writeKafkaNullableBytes(\(value), compact: \(compact))"
                          : "\(target).writeKafkaBytes(\(value), compact: \(compact))")
        case "records":
            line("\(target).writeKafkaRecords(\(value), compact: \(compact))")
        default:
            if nullable {
                open("if let present = \(value)")
                line("\(target).writeInteger(Swift.Int8(1))")
                line("present.encode(into: &\(target), version: version)")
                close()
                open("else")
                line("\(target).writeInteger(Swift.Int8(-1))")
                close()
            } else {
                line("\(value).encode(into: &\(target), version: version)")
            }
        }
    }

    // MARK: - decode

    private mutating func renderDecode(fields: [FieldSpec]) {
        open("public init(from buffer: inout NIOCore.ByteBuffer, version: Swift.Int16) throws(DecodeError)")
        line("self.init()")
        line("let flexible = \(flexibleExpression)")
        line("_ = flexible")
        for f in fields {
            let range = regularRange(f)
            let cond = range.condition(within: valid)
            if cond == "false" { continue }
            if let cond { open("if \(cond)") }
            decodeValue(f, into: "self.\(Self.propertyName(f.name))", compact: compactExpression(f), source: "buffer")
            if cond != nil { close() }
        }
        if flexibleStart != nil {
            let tagged = fields.filter { $0.isTagged }.sorted { $0.tag! < $1.tag! }
            open("if flexible")
            line("let tagCount = try buffer.readKafkaTaggedFieldCount()")
            open("for _ in 0..<tagCount")
            line("let tagged = try buffer.readKafkaTaggedField()")
            if tagged.isEmpty {
                line("self.unknownTaggedFields.append(tagged)")
            } else {
                line("var field = tagged.data")
                open("switch tagged.tag")
                for f in tagged {
                    if let c = taggedRange(f).condition(within: valid) {
                        line("case \(f.tag!) where \(c):")
                    } else {
                        line("case \(f.tag!):")
                    }
                    indent += 1
                    decodeValue(f, into: "self.\(Self.propertyName(f.name))", compact: "true", source: "field")
                    indent -= 1
                }
                line("default:")
                line("    self.unknownTaggedFields.append(tagged)")
                close()
            }
            close()
            close()
        }
        close()
    }

    private mutating func decodeValue(_ f: FieldSpec, into target: String, compact: String, source: String) {
        let nullable = isNullable(f)
        let label = "\"\(f.name)\""
        if f.isArray {
            let element = Self.primitiveType(f.elementType) ?? f.elementType
            if nullable {
                let nc = nullableCondition(f)
                open("do")
                if nc == nil || nc == "false" {
                    line("let count = try \(source).readKafka\(nc == "false" ? "" : "Nullable")ArrayLength(compact: \(compact), field: \(label))")
                } else {
                    line("let count = (\(nc!)) ? try \(source).readKafkaNullableArrayLength(compact: \(compact), field: \(label)) : try \(source).readKafkaArrayLength(compact: \(compact), field: \(label))")
                }
                open("if let count")
                line("var elements: [\(element)] = []")
                line("elements.reserveCapacity(Swift.min(count, 64))")
                open("for _ in 0..<count")
                decodeScalar(f.elementType, into: "let element", nullable: false, compact: compact, source: source, label: label)
                line("elements.append(element)")
                close()
                line("\(target) = elements")
                close()
                open("else")
                line("\(target) = nil")
                close()
                close()
            } else {
                open("do")
                line("let count = try \(source).readKafkaArrayLength(compact: \(compact), field: \(label))")
                line("var elements: [\(element)] = []")
                line("elements.reserveCapacity(Swift.min(count, 64))")
                open("for _ in 0..<count")
                decodeScalar(f.elementType, into: "let element", nullable: false, compact: compact, source: source, label: label)
                line("elements.append(element)")
                close()
                line("\(target) = elements")
                close()
            }
            return
        }
        if nullable, let nc = nullableCondition(f), nc != "false", f.type != "records" {
            // Nullable only in some versions.
            open("if \(nc)")
            decodeScalar(f.type, into: target, nullable: true, compact: compact, source: source, label: label)
            close()
            open("else")
            decodeScalar(f.type, into: target, nullable: false, compact: compact, source: source, label: label)
            close()
        } else {
            decodeScalar(f.type, into: target, nullable: nullable && nullableCondition(f) != "false", compact: compact, source: source, label: label)
        }
    }

    private mutating func decodeScalar(_ type: String, into target: String, nullable: Bool, compact: String, source: String, label: String) {
        switch type {
        case "bool": line("\(target) = try \(source).readKafkaBool(field: \(label))")
        case "int8": line("\(target) = try \(source).readKafkaInteger(Swift.Int8.self, field: \(label))")
        case "int16": line("\(target) = try \(source).readKafkaInteger(Swift.Int16.self, field: \(label))")
        case "int32": line("\(target) = try \(source).readKafkaInteger(Swift.Int32.self, field: \(label))")
        case "int64": line("\(target) = try \(source).readKafkaInteger(Swift.Int64.self, field: \(label))")
        case "uint16": line("\(target) = try \(source).readKafkaInteger(Swift.UInt16.self, field: \(label))")
        case "uint32": line("\(target) = try \(source).readKafkaInteger(Swift.UInt32.self, field: \(label))")
        case "float64": line("\(target) = try \(source).readKafkaFloat64(field: \(label))")
        case "uuid": line("\(target) = try \(source).readKafkaUuid(field: \(label))")
        case "string":
            line("\(target) = try \(source).readKafka\(nullable ? "Nullable" : "")String(compact: \(compact), field: \(label))")
        case "bytes":
            line("\(target) = try \(source).readKafka\(nullable ? "Nullable" : "")Bytes(compact: \(compact), field: \(label))")
        case "records":
            line("\(target) = try \(source).readKafkaRecords(compact: \(compact), field: \(label))")
        default:
            if nullable {
                open("if try \(source).readKafkaInteger(Swift.Int8.self, field: \(label)) >= 0")
                line("\(target) = try \(type)(from: &\(source), version: version)")
                close()
                open("else")
                line("\(target) = nil")
                close()
            } else {
                line("\(target) = try \(type)(from: &\(source), version: version)")
            }
        }
    }
}
